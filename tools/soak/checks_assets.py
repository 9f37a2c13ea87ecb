"""End checks on kept images: every succeeded task's results are stored, named by their asset
rows and downloadable from taskhook byte for byte; every image the simulator never serves (its
``image_faults`` "missing" ones, known from the same hash the simulator uses) failed its task
``result_unavailable``; and no mirror job is left over.

Only a sample of results is downloaded (``DOWNLOADS``): the rows are all checked, the HTTP path
enough times to catch a link or a blob that does not hold.
"""

from __future__ import annotations

import hashlib
import json
import re

import httpx

from service.providers.simulator import ImageFault, image_fault
from tools.soak.accounts import Account
from tools.soak.api import BUSY_OR_DOWN, Api
from tools.soak.db import Row, Snapshot
from tools.soak.report import Check

DOWNLOADS = 40
#: the simulator's image links (mounted at /simulator, or alone on a port of its own)
_SIM_IMAGE = re.compile(r"/images/(?P<id>[^/]+)/(?P<index>\d+)\.\w+$")


def _missing(source_url: str, fraction: float) -> bool:
    found = _SIM_IMAGE.search(source_url)
    if found is None:
        return False
    behaviour = image_fault(found["id"], int(found["index"]), fraction)
    return behaviour.fault is ImageFault.MISSING


def lost_image(task: Row, image_faults: float) -> bool:
    """A task failed ``result_unavailable`` on an image the simulator answers 404 for good (the
    failure names the link; the fault comes from the simulator's own hash)."""
    if task["status"] != "failed" or task["failure_code"] != "result_unavailable":
        return False
    url = (task["failure_message"] or "").rsplit(": ", 1)[-1]
    return _missing(url, image_faults)


async def results_kept(
    snap: Snapshot, api: Api, accounts: list[Account], image_faults: float
) -> Check:
    check = Check("images kept: results stored, served byte for byte; lost images failed once")
    assets = snap.by_id("assets")
    keys = {account.id: account.key for account in accounts}
    succeeded = [t for t in snap.tasks if t["status"] == "succeeded"]
    failed = [t for t in snap.tasks if t["status"] == "failed"]
    kept = 0
    for task in succeeded:
        results = json.loads(task["results"])
        check.expect(bool(results), f"{task['id']}: succeeded without results")
        for index, result in enumerate(results):
            asset = assets.get(result.get("asset_id") or "")
            check.expect(asset is not None, f"{task['id']}: result {index} has no asset row")
            if asset is None:
                continue
            kept += 1
            check.expect(
                (asset["task_id"], asset["sha256"], asset["bytes"])
                == (task["id"], result["sha256"], result["bytes"]),
                f"{task['id']}: result {index} and its asset row disagree",
            )
            check.expect(
                not _missing(result["source_url"], image_faults),
                f"{task['id']}: succeeded with an image the provider never served",
            )
    unavailable = [t for t in failed if t["failure_code"] == "result_unavailable"]
    for task in unavailable:
        check.expect(json.loads(task["results"]) == [], f"{task['id']}: failed with results")
        check.expect(
            lost_image(task, image_faults), f"{task['id']}: result_unavailable on a served image"
        )
    check.expect(not snap.mirrors, f"{len(snap.mirrors)} mirror jobs left after the drain")
    downloaded = 0
    async with httpx.AsyncClient(timeout=10) as http:
        for task in succeeded[:DOWNLOADS]:
            answer = await api.settled(
                "GET",
                f"/v1/tasks/{task['id']}",
                retry_on=BUSY_OR_DOWN,
                key=keys[task["account_id"]],
            )
            for result in answer.field("results") or []:
                got = await http.get(result["url"])
                check.expect(
                    got.status_code == 200, f"{task['id']}: {result['url']} → {got.status_code}"
                )
                check.expect(
                    hashlib.sha256(got.content).hexdigest() == result["sha256"]
                    and len(got.content) == result["bytes"],
                    f"{task['id']}: the served image is not the one kept",
                )
                downloaded += 1
    check.figures["results kept"] = kept
    check.figures["results downloaded and verified"] = downloaded
    check.figures["tasks failed result_unavailable"] = len(unavailable)
    check.figures["tasks failed no_result"] = sum(t["failure_code"] == "no_result" for t in failed)
    return check
