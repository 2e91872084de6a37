"""A training script of your own: MLflow tracks the runs, `log_predictions` stores their predictions.

    eval "$(.venv/bin/ml-eval env)"          # the warehouse, MLFLOW_TRACKING_URI, the project
    .venv/bin/python examples/train_iris.py   # after `ml-eval load-dataset iris iris.csv`
    .venv/bin/ml-eval build

Two classifiers on Iris, each an MLflow run in experiment "iris" that logs its params and
the metrics it computed itself (under the names teams use: accuracy, f1_macro); the run's
test predictions go to the Dataset Database, by the same sample keys as iris.csv, with the
model's probability for each label. The marts then recompute every metric in SQL.
"""

import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from ml_eval import log_predictions

iris = load_iris(as_frame=True)
features = iris.data
labels = iris.target_names[iris.target]  # "setosa", "versicolor", "virginica"
keys = [str(row) for row in range(len(features))]  # iris.csv's sample_key column
x_train, x_test, y_train, y_test, _, test_keys = train_test_split(
    features, labels, keys, test_size=0.3, random_state=0, stratify=labels
)

mlflow.set_experiment("iris")  # the tracking URI comes from MLFLOW_TRACKING_URI
for name, model in {
    "logistic-regression": LogisticRegression(max_iter=1000),
    "decision-tree": DecisionTreeClassifier(max_depth=2, random_state=0),
}.items():
    with mlflow.start_run(run_name=name) as run:
        mlflow.log_params(model.get_params())
        model.fit(x_train, y_train)
        predicted = model.predict(x_test)
        mlflow.log_metric("accuracy", accuracy_score(y_test, predicted))
        mlflow.log_metric("f1_macro", f1_score(y_test, predicted, average="macro"))
        log_predictions(
            run.info.run_id, "iris", test_keys, predicted, model.predict_proba(x_test), labels=model.classes_
        )
        print(f"{name}: run {run.info.run_id}, accuracy {accuracy_score(y_test, predicted):.4f}")
