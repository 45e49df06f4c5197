"""Training a challenger: LightGBM with recency sample weights (`train`), the model
wrapper and its code for MLflow (`model`, `model_code`), the recipe chosen by a rolling
backtest (`recipe`) and evaluation on newer rows (`evaluate`)."""
