"""The cocotb testbench that fkhw's RTL simulations run: ``hdl/fkhw_tb.v``
(clock, weight load, stimulus, capture), its Verilator control files, and
the cocotb test that drives a job (``test_encoder``). Shipped as package
data so an installed fkhw simulates without a checkout."""
