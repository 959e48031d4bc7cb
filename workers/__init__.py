"""The RQ side of hookbird: the job function the receiver enqueues, and (soon) the worker."""
