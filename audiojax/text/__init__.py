"""The text side of Prompt-ASR: output styles (:mod:`.styles`), the BPE output vocabulary (:mod:`.tokenizer`) and the
training-time prompt samplers plus the byte-level prompt encoding (:mod:`.prompts`)."""
