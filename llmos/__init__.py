"""llmos: a local LLM as a small operating system for agents."""
