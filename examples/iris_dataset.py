"""Write scikit-learn's Iris as a dataset file for `ml-eval load-dataset`: a CSV on stdout.

    python examples/iris_dataset.py > iris.csv
    ml-eval load-dataset iris iris.csv

Columns: sample_key (the row number), the four features, and target (the species name:
setosa, versicolor, virginica, string labels).
"""

import sys

from sklearn.datasets import load_iris

iris = load_iris(as_frame=True)
frame = iris.data.copy()
frame.insert(0, "sample_key", range(len(frame)))
frame["target"] = iris.target_names[iris.target]
frame.to_csv(sys.stdout, index=False)
