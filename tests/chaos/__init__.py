"""The chaos suite: a real `serve` and workers on each store, a steady publisher and receivers, real faults one
after another, and an invariant checker over what the run left (`make chaos`; a short run is in `make test`)."""
