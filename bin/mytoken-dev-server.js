#!/usr/bin/env node
// Entry point of the mytoken dev server CLI (needs Node >= 24: the sources are TypeScript).
import { main } from '../devserver/cli.ts';

process.exitCode = await main(process.argv.slice(2));
process.exit();
