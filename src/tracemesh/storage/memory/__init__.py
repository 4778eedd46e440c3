"""Memory storage: newest traces in RAM, oldest evicted past `--memory.max-traces`."""
