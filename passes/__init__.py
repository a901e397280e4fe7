"""Built-in rewrite passes; each module registers itself with the pass registry."""
