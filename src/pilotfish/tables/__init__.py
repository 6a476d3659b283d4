"""Tables as evidence: table files and databases registered in a knowledge base, the linker that picks
tables, columns and cell values for a question, SQL written by the LLM and run in a read-only sandbox,
and linked rows serialised as evidence."""
