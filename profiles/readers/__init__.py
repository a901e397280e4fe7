"""One reader module per profile format family; `profiles.read.read_profile` chooses among them."""
