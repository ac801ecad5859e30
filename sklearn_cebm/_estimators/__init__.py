"""What the estimators share: their bases, checks, input scaling and parameter docs."""
