"""The offline sources of real audio the dataset builders draw on: Debian packages fetched with apt (``apt``),
espeak-ng speech synthesis (``espeak``) and General-MIDI notes rendered from a SoundFont (``soundfont``)."""
