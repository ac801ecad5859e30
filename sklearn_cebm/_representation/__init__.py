"""The estimators that learn a representation: CEBMEncoder, IGEBMEncoder and VAEEncoder."""
