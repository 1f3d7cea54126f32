"""Damage: how far a faulty output is from the fault-free one (EMD on the
trigger-cell geometry, or any metric found by name), and how firm a
per-fault figure is (confidence intervals over modules)."""
