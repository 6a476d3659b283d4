"""Knowledge graphs: triples, the in-memory graph, entity linking, relation paths and their evidence."""
