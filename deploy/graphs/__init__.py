"""``python -m deploy.graphs``: the README's monitoring graphs, made again from a real
run (:mod:`deploy.graphs.run`) of what :mod:`deploy.graphs.panels` shows."""
