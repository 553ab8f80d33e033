"""Decoding for ASR outputs: transducer greedy / modified beam search, CTC greedy / prefix beam search, and hotword
boosting with an Aho–Corasick context graph and a character n-gram LM (shallow fusion)."""
from __future__ import annotations

from audiojax.decoding.char_lm import CharNgramLM, LmFusion
from audiojax.decoding.context_graph import ContextGraph
from audiojax.decoding.ctc import ctc_greedy, ctc_prefix_beam_search, ctc_prefix_beam_search_nbest
from audiojax.decoding.transducer import greedy_search, modified_beam_search, modified_beam_search_nbest

DECODERS = ("transducer", "ctc")  # an ASR model's RNN-T, or its auxiliary CTC head

__all__ = ["DECODERS", "CharNgramLM", "LmFusion", "ContextGraph", "ctc_greedy", "ctc_prefix_beam_search",
           "ctc_prefix_beam_search_nbest", "greedy_search", "modified_beam_search", "modified_beam_search_nbest"]
