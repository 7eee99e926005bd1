"""`chronos doctor`: a deployment's settings checked one by one, without a running agent."""
