"""The LLM client and what surrounds it: config, fallback chain, answers, prompts, spend, breakers, metrics."""
