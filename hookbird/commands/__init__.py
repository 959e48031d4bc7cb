"""Sub-commands of the ``hookbird`` CLI, one module per group (see ``hookbird.cli``)."""
