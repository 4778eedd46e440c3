"""Process plumbing: ports, configuration, owned background tasks, own metrics and logs."""
