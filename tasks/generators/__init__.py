"""Test generators and the module pipeline: the round protocol, Pynguin, OpenHands, the LLM round."""
