"""`atelier eval`: held-out queries and simulated users through the running stack; writes a report."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from atelier.serving.settings import ROOT

NOTES = (
    "Stages: `ann` is the retrieval order of the anonymous answer's articles, `ann+rerank` the "
    "anonymous answer, `ann+rerank+personalisation` the answer for the user (for anonymous attribute "
    "queries it equals ann+rerank). Relevance: graded attribute agreement (atelier/offline/evaluation/queries.py); "
    "recall and MRR count fully matching articles; recall@k is hits / min(k, relevant). "
    "Simulated users: atelier/offline/evaluation/users.py. With vision on, `hybrid` is SearchHybrid's answer to "
    "the same query text without a photo (compare it with ann+rerank, SearchText's answer); image -> image "
    "and text -> image precision: atelier/offline/evaluation/vision.py."
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    from atelier.offline.catalog.command import add_dataset_arguments

    parser = commands.add_parser("eval", help="offline evaluation through the running stack (NDCG, recall, MRR)")
    add_dataset_arguments(parser)
    parser.add_argument("--queries", type=int, default=200, help="held-out attribute queries")
    parser.add_argument("--users", type=int, default=40, help="simulated users with a click history")
    parser.add_argument("--cold-users", type=int, default=10, help="simulated users without history")
    parser.add_argument("--eval-seed", type=int, default=5, help="seed of the queries, users and photos")
    parser.add_argument(
        "--photos-per-class", type=int, default=20, help="held-out query photos per garment class (vision on)"
    )
    parser.add_argument(
        "--depth-mix",
        action="append",
        default=[],
        metavar="LABEL=FILE",
        help="NDCG@10 at the rerank depths a load run saw (`benchmarks.mixed_load --out FILE`); repeatable",
    )
    parser.add_argument(
        "--explained-searches", type=int, default=30, help="searches asking for explanations (0: no section)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "eval", help="report directory")
    parser.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from atelier.offline.catalog.article_images import with_images_folder
    from atelier.offline.catalog.command import choose_dataset
    from atelier.offline.catalog.hm_loader import iter_articles, iter_transactions
    from atelier.offline.evaluation import explanations, report, users, vision
    from atelier.offline.evaluation.client import StackClient
    from atelier.offline.evaluation.purchases import last_week_purchases, purchase_queries
    from atelier.offline.evaluation.queries import graded_queries
    from atelier.offline.evaluation.relevance import ALL, evaluate_queries
    from atelier.offline.evaluation.rerank_depth import DepthCurve, load_mix
    from atelier.offline.evaluation.rerank_depth import summary as depth_summary
    from atelier.offline.evaluation.stages import StageLatencies
    from atelier.offline.machine import machine
    from atelier.serving.settings import Endpoints

    mixes = {}
    for given in args.depth_mix:
        label, _, path = given.partition("=")
        if not path:
            raise SystemExit(f"--depth-mix takes LABEL=FILE, got {given!r}")
        mixes[label] = load_mix(Path(path))
    curve = DepthCurve()
    dataset = choose_dataset(args)
    articles = list(iter_articles(dataset.articles))
    endpoints = Endpoints.from_env()
    client = StackClient(endpoints.edge_grpc_address)
    started = time.monotonic()
    try:
        vision_off = vision.probe(client, args.eval_seed)
        if vision_off:
            print(f"vision off: {vision_off}", flush=True)
        print(f"{args.queries} held-out attribute queries ...", flush=True)
        queries = list(graded_queries(articles, args.queries, args.eval_seed, held_out=True))
        latencies = StageLatencies()
        relevance, counts = evaluate_queries(
            client, queries, hybrid=vision_off is None, depths=curve, latencies=latencies
        )
        purchases = None
        if dataset.transactions is not None:
            print(f"{args.queries} purchase queries (last week's purchases) ...", flush=True)
            bought = last_week_purchases(iter_transactions(dataset.transactions))
            by_id = {article.article_id: article for article in articles}
            purchase_tables, purchase_counts = evaluate_queries(
                client, purchase_queries(by_id, bought, args.queries, args.eval_seed), relevant_from=1
            )
            purchases = {"means": purchase_tables[ALL].means(), "counts": purchase_counts}
        run_tag = f"eval-{int(time.time())}"
        simulated = users.simulate_users(articles, args.users, args.eval_seed, run_tag)
        print(f"{len(simulated)} simulated users: sending their clicks ...", flush=True)
        users.send_histories(client, simulated)
        per_user: list[dict[str, float | str]] = []
        personalised = users.evaluate_users(client, simulated, per_user)
        cold = users.simulate_users(articles, args.cold_users, args.eval_seed + 1, run_tag)
        unchanged, compared = users.unchanged_without_history(client, cold, run_tag)
        explained = None
        if args.explained_searches:
            half = args.explained_searches // 2
            fixed = [(query.text, "") for query, _ in queries[:half]]
            fixed += [(user.intent, user.user_id) for user in simulated[: args.explained_searches - half]]
            print(f"{len(fixed)} searches asking for explanations ...", flush=True)
            explained = explanations.evaluate(client, fixed)
        if vision_off:
            vision_result = vision.off(vision_off)
        else:
            image_path = with_images_folder(dataset).image_path
            vision_result = vision.evaluate(
                client, endpoints, articles, image_path, args.photos_per_class, args.eval_seed
            )
    finally:
        client.close()
    result = {
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "catalogue": str(dataset.articles),
        "articles": len(articles),
        "seed": args.eval_seed,
        "seconds": round(time.monotonic() - started, 1),
        "relevance": {
            "means": relevance[ALL].means(),
            "by_wording": {name: table.means() for name, table in relevance.items() if name != ALL},
            "counts": counts,
        },
        "rerank_depth": depth_summary(curve, mixes) if curve.ndcg else None,
        "purchases": purchases,
        "personalisation": {
            "means": personalised.means(),
            "users": len(simulated),
            "cold_users": compared,
            "cold_unchanged": unchanged,
            "per_user": per_user,
        },
        "latency_by_stage": latencies.summary(),
        "vision": vision_result,
        "explanations": explained,
        "notes": NOTES,
    }
    json_path, md_path, html_path = report.write(result, args.out)
    print(report.render(result))
    print(f"report: {md_path}, {html_path.name} (plots) and {json_path.name} ({result['seconds']} s)")
    return 0
