"""The deployment's monitoring files (prometheus/, grafana/) and :mod:`deploy.graphs`,
which pictures them; nothing here is installed with the wheel."""
