"""Do we trust the answer: claim-by-claim NLI checks, repair actions and sampling uncertainty."""
