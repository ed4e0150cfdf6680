"""Train a churn classifier on a versioned dataset inside a tracked run.

python churn_train.py --data churn@v2 --max-depth 8
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

import loopml

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "autopay", "age"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="churn@latest")
    parser.add_argument("--max-depth", type=int, default=8)
    parser.add_argument("--trees", type=int, default=100)
    args = parser.parse_args()

    with loopml.start_run(experiment="churn", name=f"rf-depth-{args.max_depth}") as run:
        loopml.seed(42)
        frame = loopml.data.read_frame(args.data)  # recorded as this run's input
        features = frame[FEATURES].assign(
            age=frame["age"].fillna(frame["age"].median()),
            autopay=frame["autopay"].astype(int),
            **{f"plan_{p}": (frame["plan"] == p).astype(int) for p in ("basic", "premium")},
        )
        x_train, x_test, y_train, y_test = train_test_split(
            features, frame["churned"], test_size=0.25, random_state=42, stratify=frame["churned"]
        )
        loopml.log_params(
            {"data": args.data, "max_depth": args.max_depth, "n_estimators": args.trees}
        )
        model = RandomForestClassifier(
            n_estimators=args.trees, max_depth=args.max_depth, random_state=42, n_jobs=2
        )
        model.fit(x_train, y_train)

        # Accuracy as trees are added: a metric with a history.
        votes = np.zeros(len(x_test))
        for count, tree in enumerate(model.estimators_, start=1):
            votes += tree.predict_proba(x_test.to_numpy())[:, 1]
            if count % 10 == 0:
                accuracy = accuracy_score(y_test, votes / count > 0.5)
                loopml.log_metric("test_accuracy_by_trees", accuracy, step=count)

        proba = model.predict_proba(x_test)[:, 1]
        metrics = {
            "accuracy": accuracy_score(y_test, proba > 0.5),
            "auc": roc_auc_score(y_test, proba),
            "log_loss": log_loss(y_test, proba),
        }
        loopml.log_metrics(metrics)
        importances = dict(zip(features.columns, model.feature_importances_.round(4), strict=True))
        loopml.log_dict({"feature_importance": importances}, "importance.json")
        loopml.log_table(x_test.assign(churned=y_test, proba=proba), "test_predictions")
        loopml.set_tag("model", "random_forest")
        print(f"run {run.id[:8]}: " + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
