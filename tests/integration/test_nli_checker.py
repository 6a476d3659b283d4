"""The shipped NLI model (`nli-small`) and the checkers built on it, on clear-cut real sentences."""

from __future__ import annotations

import pytest

from pilotfish.models.nli import NLIModel
from pilotfish.verification.checker import NLIGroundednessChecker
from pilotfish.verification.uncertainty import SemanticEntropy

pytestmark = pytest.mark.integration

KANSAS = ("The University of Kansas is a public research university with its main campus in Lawrence, Kansas. "
          "It was founded in 1865 and is the largest university in the state.")


@pytest.fixture(scope="module")
def nli() -> NLIModel:
    return NLIModel()


def test_three_way_probabilities_on_clear_pairs(nli: NLIModel) -> None:
    entail, contra = nli.predict([("A man is playing a guitar on stage.", "A man is playing an instrument."),
                                  ("A man is playing a guitar on stage.", "Nobody is playing anything.")])
    assert entail.label == "entailment" and contra.label == "contradiction"
    for s in (entail, contra):
        assert abs(s.entailment + s.neutral + s.contradiction - 1.0) < 1e-6


def test_checker_finds_the_supporting_passage_and_flags_the_rest(nli: NLIModel) -> None:
    checker = NLIGroundednessChecker.default()
    verdict = checker.check("The University of Kansas has its main campus in Lawrence. It was founded in 1990.",
                            ["Kansas City jazz developed in the 1930s.", KANSAS])
    first, second = verdict.claims
    assert first.label == "supported" and first.passage == 1
    assert second.label != "supported" and verdict.label != "supported"
    assert 0.0 <= verdict.supported == min(first.supported, second.supported)


def test_long_evidence_is_read_in_windows(nli: NLIModel) -> None:
    filler = " ".join(f"Chapter {i} of the report describes the weather in the region during that year."
                      for i in range(40))
    evidence = filler + " " + KANSAS
    assert len(nli.windows(evidence, "It was founded in 1865.")) > 1
    verdict = NLIGroundednessChecker.default().check("The University of Kansas was founded in 1865.", [evidence])
    assert verdict.claims[0].label == "supported"


def test_semantic_entropy_separates_agreeing_from_disagreeing_answers(nli: NLIModel) -> None:
    entropy = SemanticEntropy(model=nli)
    question = "Where is the main campus of the University of Kansas?"
    agree = entropy.measure(["Lawrence, Kansas", "in Lawrence, Kansas", "Lawrence, Kansas."], question=question)
    split = entropy.measure(["Lawrence, Kansas", "Topeka", "Wichita"], question=question)
    assert agree.entropy < split.entropy


LICENCE = ("Permission is granted to anyone to use this software for any purpose, including commercial "
           "applications, and to alter it and redistribute it freely, subject to the following restrictions. "
           "The origin of this software must not be misrepresented; you must not claim that you wrote the "
           "original software. Altered source versions must be plainly marked as such, and must not be "
           "misrepresented as being the original software. This notice may not be removed or altered from any "
           "source distribution.")
NAVIGATION = ("Home | Downloads | Documentation | Mailing lists | Bug tracker. Skip to main content. This page was "
              "last edited by the web team. Cookies help us deliver our services; by using them you agree to our "
              "use of cookies. Search this site. Sign in to edit.")


@pytest.mark.parametrize(("preamble", "note", "claim", "question"), [
    # the reported case: a one-line note after a licence paragraph, in one ~100-word chunk
    (LICENCE, "The 1.12 release of gzip came out on 7 April 2022 and fixes the zgrep security bug.",
     "7 April 2022", "When was gzip 1.12 released?"),
    (LICENCE, "The 1.12 release of gzip came out on 7 April 2022 and fixes the zgrep security bug.",
     "gzip 1.12 was released on 7 April 2022. It fixes the zgrep security bug.", None),
    # a web page: the fact after the site's navigation and cookie text
    (NAVIGATION, "Release 3.4 of tmux added support for popup windows and was published in February 2024.",
     "tmux 3.4 added popup windows.", None),
    # a changelog line after build boilerplate
    ("Built from the upstream tarball with the default configure flags. Run make check before installing. "
     "Report packaging problems to the distribution's bug tracker, not upstream. " + LICENCE,
     "Version 2.6 of libfoo removed the deprecated foo_open_legacy function.",
     "foo_open_legacy was removed in libfoo 2.6.", None),
])
def test_a_fact_after_unrelated_text_is_supported_by_its_own_sentences(preamble: str, note: str, claim: str,
                                                                       question: str | None) -> None:
    checker = NLIGroundednessChecker.default()
    alone = checker.check(claim, [note], question=question)
    chunk = checker.check(claim, [preamble + "\n\n" + note], question=question)
    assert alone.label == "supported"
    assert chunk.label == "supported", [c.to_dict() for c in chunk.claims]
    # without the focused windows the same chunk is read as a whole and the fact is lost in it
    whole = NLIGroundednessChecker.default(focus=0).check(claim, [preamble + "\n\n" + note], question=question)
    assert whole.supported < chunk.supported


def test_focused_windows_do_not_support_a_fact_the_chunk_lacks() -> None:
    checker = NLIGroundednessChecker.default()
    chunk = LICENCE + "\n\nRelease 3.4 of tmux added support for popup windows."
    for claim, question in (("gzip 1.12 was released on 7 April 2022.", None),
                            ("3.3", "Which version of tmux is installed?"),  # a number it does not write
                            ("tmux 3.3 is installed.", None)):
        assert checker.check(claim, [chunk], question=question).label != "supported", claim
