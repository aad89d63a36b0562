#!/usr/bin/env bash
# Deploys boxoffice to the Kubernetes cluster kubectl points at:
#   BOXOFFICE_IMAGE=registry.example/boxoffice:0.1.0 BOXOFFICE_ORGANIZER_PASSWORD=... k8s/deploy.sh
# BOXOFFICE_OVERLAY picks the kustomize overlay (production, the default, or
# local); BOXOFFICE_DEPLOY_WITH=helm installs the chart k8s/chart instead,
# with k8s/chart/values-$BOXOFFICE_OVERLAY.yaml (both render the same
# objects; the test command checks it). Builds nothing: push the image built
# from the Dockerfile first. Creates the Secret once (random database
# password and auth secret, the organizer password from
# BOXOFFICE_ORGANIZER_PASSWORD): credentials live only there. Then applies
# everything and waits for each rollout.
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NS=boxoffice
IMAGE="${BOXOFFICE_IMAGE:-boxoffice:0.1.0}"
OVERLAY="${BOXOFFICE_OVERLAY:-production}"
WITH="${BOXOFFICE_DEPLOY_WITH:-kustomize}"
say() { printf '\033[1m[deploy]\033[0m %s\n' "$*"; }

command -v kubectl >/dev/null || { echo "kubectl is needed" >&2; exit 1; }
[[ -d "$DIR/overlays/$OVERLAY" ]] || { echo "no overlay $OVERLAY in $DIR/overlays" >&2; exit 1; }
kubectl apply -f "$DIR/base/namespace.yaml"
if ! kubectl -n "$NS" get secret boxoffice-secrets >/dev/null 2>&1; then
  say "creating the secret boxoffice-secrets"
  pg_password="$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
  kubectl -n "$NS" create secret generic boxoffice-secrets \
    --from-literal=POSTGRES_PASSWORD="$pg_password" \
    --from-literal=DATABASE_URL="postgres://postgres:$pg_password@postgres.$NS.svc:5432/boxoffice" \
    --from-literal=BOXOFFICE_AUTH_SECRET="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" \
    --from-literal=BOXOFFICE_ORGANIZER_PASSWORD="${BOXOFFICE_ORGANIZER_PASSWORD:?set the organizers password}"
fi
config_now() { kubectl -n "$NS" get configmap boxoffice-config -o jsonpath='{.data}' 2>/dev/null || true; }
config_before="$(config_now)"
say "applying $OVERLAY with $WITH (image $IMAGE)"
if [[ "$WITH" == helm ]]; then
  # repository[:tag] or repository@digest; a registry host may carry a port.
  if [[ "$IMAGE" == *@* ]]; then
    image_args=(--set image.repository="${IMAGE%@*}" --set image.digest="${IMAGE#*@}")
  elif [[ "${IMAGE##*/}" == *:* ]]; then
    image_args=(--set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}")
  else
    image_args=(--set image.repository="$IMAGE" --set image.tag=latest)
  fi
  command -v helm >/dev/null || { echo "helm is needed" >&2; exit 1; }
  helm upgrade --install boxoffice "$DIR/chart" --namespace "$NS" \
    -f "$DIR/chart/values-$OVERLAY.yaml" --set createNamespace=false \
    "${image_args[@]}"
else
  kubectl kustomize "$DIR/overlays/$OVERLAY" | sed "s#image: boxoffice:0.1.0#image: $IMAGE#" | kubectl apply -f -
fi
# Pods read the ConfigMap at start only: a changed one needs new pods (a
# mixed fleet, say half of it with the schema registry, would hold partitions).
if [[ -n "$config_before" && "$(config_now)" != "$config_before" ]]; then
  say "boxoffice-config changed: restarting the roles"
  kubectl -n "$NS" rollout restart deployment/reservation-processor statefulset/seat-processor \
    deployment/api deployment/dashboard
fi
for s in statefulset/kafka statefulset/postgres deployment/redis deployment/schema-registry \
         deployment/reservation-processor statefulset/seat-processor deployment/api deployment/dashboard; do
  if kubectl -n "$NS" get "$s" >/dev/null 2>&1; then
    say "waiting for $s"
    kubectl -n "$NS" rollout status "$s" --timeout=300s
  fi
done
say "done: kubectl -n $NS port-forward svc/dashboard 8380 (web app), svc/api 8080 (API)"
