"""Training objectives: CTC, transducer (RNN-T) and the losses of the other model families."""
