"""The design-review run (``fkhw sim``, ``make sim``): the whole flow on one
model as steps that rerun only when their inputs change (fkhw.review.ledger,
fkhw.review.flow), the checks with their verdicts (fkhw.review.checks), and
what a reviewer and a CI system read (fkhw.review.report: report.html,
report.md, results.xml, the terminal table)."""
