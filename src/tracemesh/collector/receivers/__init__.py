"""One module per wire protocol a client uses to send spans."""
