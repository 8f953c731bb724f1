"""The Predictive Concept Decoder: activations from S, encoder, decoder, pretraining, labels and checkpoints."""
