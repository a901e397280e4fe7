"""The profile-guided loop: the A/B timing engine (:mod:`optimizer.loop.timing`), the choice of
candidate passes, and the one place that joins the pass manager with :mod:`profiles`."""
