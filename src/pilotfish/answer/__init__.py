"""In what order the small models act: the pipeline spec, its one assembly path (`build`) and the graph."""

from pilotfish.answer.build import build
from pilotfish.answer.graph import AnswerPipeline
from pilotfish.answer.spec import BUILTIN, PipelineSpec

__all__ = ["BUILTIN", "AnswerPipeline", "PipelineSpec", "build"]
