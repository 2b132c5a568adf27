"""Where each engine verb lives: the mixin family (a module of this package) that defines it.

``Engine`` takes a family's methods the first time one of them is used, so a command imports the
one or two families it calls instead of all thirteen and their options (a fifth of the imports of
``ps`` or ``exec``). tests/unit/test_engine_verbs.py checks this table against the classes
themselves and prints the table to paste when a verb is added, moved or removed.
"""

#: Module of this package -> its mixin class, in the method resolution order of a full Engine.
FAMILIES: dict[str, str] = {
    "images": "ImageVerbs", "commit": "CommitVerbs", "push": "PushVerbs", "archives": "ArchiveVerbs",
    "build": "BuildVerbs", "containers": "ContainerVerbs", "system": "SystemVerbs", "volumes": "VolumeVerbs",
    "api_support": "ApiVerbs", "networks": "NetworkVerbs", "pods": "PodVerbs", "health": "HealthVerbs",
    "kube": "KubeVerbs",
}

#: Every attribute a family defines (verbs, their helpers, properties) -> its family.
VERBS: dict[str, str] = {
    # images
    "_image_event": "images", "_in_use": "images", "_remove_users_of": "images", "_removed": "images",
    "image_exists": "images", "image_inspect": "images", "image_prune": "images", "images": "images",
    "pull": "images", "pull_record": "images", "rmi": "images", "tag": "images", "untag": "images",
    # commit
    "_committed": "commit", "commit": "commit", "diff": "commit", "history": "commit",
    # push
    "push": "push",
    # archives
    "_saved_images": "archives", "export": "archives", "export_to_fd": "archives", "import_image": "archives",
    "load": "archives", "save": "archives",
    # build
    "build": "build", "remove_context": "build", "unpack_context": "build",
    # containers
    "_all_or": "containers", "_each": "containers", "_find_or_pull": "containers", "_health_word": "containers",
    "_remove_quietly": "containers", "_start_one": "containers", "_with_sizes": "containers",
    "container_exists": "containers", "container_prune": "containers", "containers": "containers",
    "cp": "containers", "create": "containers", "exec": "containers", "inspect": "containers",
    "kill": "containers", "logs": "containers", "port": "containers", "ps": "containers", "rename": "containers",
    "restart": "containers", "rm": "containers", "run": "containers", "start": "containers", "stop": "containers",
    "top": "containers", "wait": "containers",
    # system
    "events": "system", "info": "system", "login": "system", "login_username": "system", "logout": "system",
    "pause": "system", "stats": "system", "system_df": "system", "system_prune": "system",
    "system_reset": "system", "version": "system",
    # volumes
    "_delete": "volumes", "_free_volume_name": "volumes", "_remove_volume_users": "volumes",
    "_seconds": "volumes", "_volume_sizes": "volumes", "volume_create": "volumes", "volume_exists": "volumes",
    "volume_inspect": "volumes", "volume_ls": "volumes", "volume_prune": "volumes", "volume_rm": "volumes",
    "volumes": "volumes",
    # api_support
    "_exec_path": "api_support", "_save_exec": "api_support", "attach": "api_support",
    "exec_create": "api_support", "exec_inspect": "api_support", "exec_resize": "api_support",
    "exec_start": "api_support", "path_stat": "api_support", "resize": "api_support", "spool": "api_support",
    "wait_condition": "api_support",
    # networks
    "_network_users": "networks", "_remove_network": "networks", "_remove_network_users": "networks",
    "network_connect": "networks", "network_create": "networks", "network_disconnect": "networks",
    "network_exists": "networks", "network_inspect": "networks", "network_ls": "networks",
    "network_prune": "networks", "network_rm": "networks", "networks": "networks",
    # pods
    "_each_pod": "pods", "_members": "pods", "_pod_network": "pods", "pod_create": "pods", "pod_exists": "pods",
    "pod_inspect": "pods", "pod_kill": "pods", "pod_prune": "pods", "pod_ps": "pods", "pod_restart": "pods",
    "pod_rm": "pods", "pod_start": "pods", "pod_stop": "pods", "pod_top": "pods", "pods": "pods",
    # health
    "healthcheck_run": "health",
    # kube
    "_kube_build": "kube", "kube_generate": "kube", "kube_play": "kube",
}
