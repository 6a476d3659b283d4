"""In what order the small models act: the pipeline spec, its one assembly path and the LangGraph graph."""
