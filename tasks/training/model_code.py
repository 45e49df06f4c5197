"""The code MLflow logs with every registered version ("models from code", MLflow 3).

Loading a version runs this file: it hands MLflow an empty GreenlightModel, whose
`load_context` reads the version's LightGBM text model and JSON state. Nothing is unpickled.
"""

from mlflow.models import set_model

from tasks.training.model import GreenlightModel

set_model(GreenlightModel.from_code())
