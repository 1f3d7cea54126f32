"""Protection of the weight registers as a design choice: proofs by
injection that a design of SEC-DED words corrects and flags what its code
promises, and the choice among TMR and code-word designs of the cheapest
one that meets a failure-probability target."""
