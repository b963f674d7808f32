"""mutmut's survivors that are equivalent mutants: they do not change what the code does, so no test can kill them.

tests/mutation/score.py leaves them out of the score and fails when an entry no longer names a
survivor whose mutated line contains the recorded text (mutmut numbers mutants per function,
so an edit to a function renumbers them: then look the mutant up again with `mutmut show`).
Only a mutant whose change no caller, user or file can observe belongs here; a survivor that
changes a result, a message or an error is killed with a test instead.

    name (under plugins/module_utils, as `mutmut results` prints it): (text on its "+" line, why)

A mutant that only deletes a line has no "+" line: its entry gives the deleted text as "-text".
"""
from __future__ import annotations

EQUIVALENT: dict[str, tuple[str, str]] = {
    # isvc.py
    "isvc.x_is_stopped__mutmut_4": (
        ".get(STOP_ANNOTATION, None)",
        'the default only has to differ from "true": str(None).lower() is "none"'),
    "isvc.x_is_stopped__mutmut_6": (
        ".get(STOP_ANNOTATION, ))",
        'the default only has to differ from "true" (None without one)'),
    "isvc.x_is_stopped__mutmut_8": (
        '"XXfalseXX"',
        'the default only has to differ from "true"'),
    "isvc.x_is_stopped__mutmut_9": (
        '"FALSE"',
        "the value is lower-cased before the comparison"),
    "isvc.x_plan_change__mutmut_126": (
        "fixed=None",
        "_set_replicas reads fixed as a truth value: None and False are alike"),
    "isvc.x__set_replicas__mutmut_23": (
        "int(current_max) <= count",
        "at maxReplicas == count, predictor_field records nothing for an unchanged value"),
    "isvc.x__plan_deployment_scale__mutmut_3": (
        '.get("name", None)',
        "an InferenceService read from the API always has metadata.name; the default is never used"),
    "isvc.x__plan_deployment_scale__mutmut_5": (
        '.get("name", )',
        "an InferenceService read from the API always has metadata.name; the default is never used"),
    "isvc.x__plan_deployment_scale__mutmut_12": (
        '.get("name", "XXXX")',
        "an InferenceService read from the API always has metadata.name; the default is never used"),
    # k8s_wait.py
    "k8s_wait.xǁWaitApiErrorǁ__init____mutmut_1": (
        "elapsed: float = 1.0",
        "every caller passes elapsed; the default is never used"),
    "k8s_wait.x__key__mutmut_14": (
        '"XX{0}/{1}XX"',
        "the key only identifies an object within one source's state: any one-to-one spelling does"),
    "k8s_wait.x__key__mutmut_16": (
        'meta.get("namespace", None)',
        'the key only identifies an object within one source (one kind): "None/x" is as unique as "/x"'),
    "k8s_wait.x__key__mutmut_18": (
        'meta.get("namespace", )',
        'the key only identifies an object within one source (one kind): "None/x" is as unique as "/x"'),
    "k8s_wait.x__key__mutmut_21": (
        'meta.get("namespace", "XXXX")',
        "the key only identifies an object within one source (one kind)"),
    "k8s_wait.x__key__mutmut_23": (
        'meta.get("name", None)',
        "objects from the API always have a name; the default is never used"),
    "k8s_wait.x__key__mutmut_25": (
        'meta.get("name", )',
        "objects from the API always have a name; the default is never used"),
    "k8s_wait.x__key__mutmut_28": (
        'meta.get("name", "XXXX")',
        "objects from the API always have a name; the default is never used"),
    "k8s_wait.x__sort_key__mutmut_10": (
        'meta.get("namespace") or "XXXX"',
        "one source lists one kind: all its objects have a namespace or none has, so the order is the same"),
    "k8s_wait.x__sort_key__mutmut_15": (
        'meta.get("name") or "XXXX"',
        "objects from the API always have a name"),
    "k8s_wait.x__run_source__mutmut_26": (
        "seen = None",
        "seen is read as a truth value: None and False are alike"),
    "k8s_wait.x__run_source__mutmut_33": (
        'resource_version or "XXXX"',
        "a watch starts only after a list, and a list always returns a resourceVersion: the default is never used"),
    "k8s_wait.x__run_source__mutmut_68": (
        "clock() - started > MIN_WATCH_SECONDS",
        "differs only when a watch lasts exactly MIN_WATCH_SECONDS, an instant no real clock hits"),
    "k8s_wait.x_wait_for__mutmut_4": (
        "backoff_initial: float = 1.5",
        "a retry delay: no outcome depends on it, and the tests assert no durations"),
    "k8s_wait.x_wait_for__mutmut_5": (
        "backoff_max: float = 9.0",
        "a retry delay: no outcome depends on it, and the tests assert no durations"),
    "k8s_wait.x_wait_for__mutmut_30": (
        "name=None,",
        "a thread's name shows only in a debugger"),
    "k8s_wait.x_wait_for__mutmut_34": (
        '-name="k8s-wait-" + source.name,',
        "a thread's name shows only in a debugger"),
    "k8s_wait.x_wait_for__mutmut_41": (
        '"XXk8s-wait-XX"',
        "a thread's name shows only in a debugger"),
    "k8s_wait.x_wait_for__mutmut_42": (
        '"K8S-WAIT-"',
        "a thread's name shows only in a debugger"),
    "k8s_wait.x_wait_for__mutmut_47": (
        "if remaining < 0:",
        "differs only when the deadline is now exactly, an instant no real clock hits"),
    "k8s_wait.x_wait_for__mutmut_54": (
        "while False:",
        "judging after each queued message instead of after the batch judges states that did exist, one "
        "event apart; the batch only saves predicate calls"),
    # kueue.py
    "kueue.x_detect_api_version__mutmut_7": (
        "choose_api_version(None, requested)",
        "with an explicit version choose_api_version does not read the served versions"),
    "kueue.x_detect_api_version__mutmut_12": (
        "choose_api_version(client.served_versions(GROUP), None)",
        'on this line requested is "auto" or empty, which choose_api_version reads as auto, as None'),
    "kueue.x_detect_api_version__mutmut_14": (
        "choose_api_version(client.served_versions(GROUP), )",
        'on this line requested is "auto" or empty: the default "auto" is the same'),
    "kueue.x_is_terminal_message__mutmut_4": (
        'message or "XXXX"',
        "no terminal pattern matches either the empty text or XXXX"),
    "kueue.xǁPodWorkloadsǁselect__mutmut_38": (
        '(r.get("name") or "XXXX")',
        "ownerReferences[].name is required by the API: the default is never used"),
    "kueue.x_cluster_queue_usage__mutmut_76": (
        '"used": "XX0XX"',
        "the next line always overwrites used"),
    "kueue.x_parse_quantity__mutmut_4": (
        "key=None",
        'the order cannot change which suffix matches: the only suffixes ending in "i" are the two-letter ones'),
    "kueue.x_parse_quantity__mutmut_7": (
        "sorted(_SUFFIXES, reverse=True)",
        'the order cannot change which suffix matches: the only suffixes ending in "i" are the two-letter ones'),
    "kueue.x_parse_quantity__mutmut_8": (
        "key=len, )",
        'the order cannot change which suffix matches: the only suffixes ending in "i" are the two-letter ones'),
    "kueue.x_parse_quantity__mutmut_9": (
        "reverse=False",
        'the order cannot change which suffix matches: the only suffixes ending in "i" are the two-letter ones'),
    # machinesets.py
    "machinesets.xǁScalerǁ__init____mutmut_3": (
        "self.selected: List[Obj] = None",
        "run() assigns selected before anything reads it"),
    # s3_etag.py
    "s3_etag.x_crc32_b64__mutmut_5": (
        ".to_bytes(4, )",
        'int.to_bytes defaults to byteorder "big" from Python 3.11, the unit tests\' Python (on 3.9 '
        "and 3.10, which the modules support, the call would fail: keep the argument)"),
    "s3_etag.xǁ_Crc32ǁdigest__mutmut_4": (
        ".to_bytes(4, )",
        'int.to_bytes defaults to byteorder "big" from Python 3.11 (see crc32_b64)'),
    "s3_etag.x_b64__mutmut_4": (
        '.decode("ASCII")',
        "codec names are case-insensitive"),
    "s3_etag.x__read_blocks__mutmut_11": (
        'open(path, "rb", )',
        "a buffered reader returns the same bytes; unbuffered only saves a copy per block"),
    "s3_etag.x__read_blocks__mutmut_14": (
        "buffering=1",
        "line buffering does not apply to binary files: Python falls back to the default buffer"),
    "s3_etag.x__read_blocks__mutmut_18": (
        "left >= 0",
        "with nothing left to read, the extra readinto of an empty view returns 0 and the loop ends"),
}
