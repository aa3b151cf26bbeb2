"""Stage 2: a model trained by streaming a feature store, evaluated honestly, used for prediction.

``mrnet.train.launch.train(TrainConfig)`` is what ``mrnet-train`` calls (``loop.train`` in each
process; ``recipe.Recipe`` is the training loop itself); ``mrnet.train.models`` holds the models, each
declared by ``@register_model``; ``mrnet.train.predict.Predictor`` turns audio files into genre
probabilities. docs/architecture.md walks through a run.
"""
