#!/usr/bin/env -S node --max-semi-space-size=64
// `chorus` from a checkout (npx chorus …): runs the TypeScript CLI through tsx.
// The single binary (npm run build:binary → dist/chorus) needs neither tsx nor node_modules.
import { register } from "tsx/esm/api"

register()
await import("../core/cli/main.ts")
