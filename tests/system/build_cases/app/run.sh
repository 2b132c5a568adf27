#!/bin/sh
echo "app $MODE in $(pwd) as $(id -un): $*"; cat /srv/app/VERSION
