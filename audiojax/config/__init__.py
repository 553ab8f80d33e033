"""Configs: the loader of experiment files and command-line overrides (:mod:`.loader`), the groups every experiment
shares and the one CPU shrink (:mod:`.common`), and one module of base configs per family (:mod:`.ced`,
:mod:`.prompt_asr`)."""
