"""The write path: receivers decode, the pipeline queues and batches, storage writes."""
