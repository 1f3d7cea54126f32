"""Protection of the weight registers by error-correcting codes (SEC-DED
words): proofs by injection that a design of code words corrects and flags
what its code promises."""
