"""Running trained models: loading them from model directories or training workdirs (:mod:`.load`, parameters
only), tagging (:mod:`.tagger`), transcription (:mod:`.transcriber`), the HEAR API (:mod:`.hear`), linear probes on
embeddings (:mod:`.probe`) and the distillation teachers' pass (:mod:`.teacher`)."""
