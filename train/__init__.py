"""Stage 2: MRNet trained by streaming a feature store, evaluated honestly, used for prediction.

``mrnet.train.loop.train(TrainConfig)`` is what ``mrnet-train`` calls; ``mrnet.train.model`` holds
the model; ``mrnet.train.predict.Predictor`` turns audio files into genre probabilities.
"""
