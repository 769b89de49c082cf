// Drives kubectl-wand's forwarded debug port with Microsoft's DAP test client
// (@vscode/debugadapter-testsupport), as an editor would.
//   node scenarios.js PORT SCENARIO APP_PATH BP_LINE
// Prints "READY" when the target should get a request (tests/reliability/test_node_client.py
// sends it), then one JSON line with what it saw. "die-*" scenarios end the process abruptly
// (no disconnect) at the named state.
const { DebugClient } = require('@vscode/debugadapter-testsupport');

const [port, scenario, app, bpLine, stepLine] = [Number(process.argv[2]), process.argv[3],
  process.argv[4], Number(process.argv[5]), Number(process.argv[6] || 0)];

async function session(dc, breakpoints, justMyCode = false) {
  await dc.initializeRequest({ adapterID: 'debugpy', clientID: 'vscode-testsupport',
    pathFormat: 'path', linesStartAt1: true, columnsStartAt1: true });
  const attached = dc.attachRequest({ justMyCode, pathMappings: [] });
  await dc.waitForEvent('initialized');
  const bps = await dc.setBreakpointsRequest({ source: { path: app }, breakpoints });
  await dc.setExceptionBreakpointsRequest({ filters: [] });
  await dc.configurationDoneRequest();
  await attached;
  return bps;
}

async function top(dc, threadId) {
  const st = await dc.stackTraceRequest({ threadId, levels: 1 });
  return st.body.stackFrames[0];
}

async function main() {
  const dc = new DebugClient('unused', 'unused', 'python');
  dc.defaultTimeout = 30000;
  await dc.start(port);
  const out = { scenario };
  if (scenario === 'inspect') {
    await session(dc, [{ line: bpLine }]);
    const stopped = dc.waitForEvent('stopped');
    console.log('READY');
    const ev = await stopped;
    const threadId = ev.body.threadId;
    const frame = await top(dc, threadId);
    out.stopLine = frame.line;
    const scopes = await dc.scopesRequest({ frameId: frame.id });
    const vars = await dc.variablesRequest({
      variablesReference: scopes.body.scopes[0].variablesReference });
    out.locals = Object.fromEntries(vars.body.variables.map(v => [v.name, v.value]));
    out.evaluate = (await dc.evaluateRequest({ expression: 'greeting.upper()',
      frameId: frame.id, context: 'repl' })).body.result;
    // step over, then out of handle(), then continue
    let s = dc.waitForEvent('stopped');
    await dc.nextRequest({ threadId });
    out.afterNext = (await top(dc, (await s).body.threadId)).line;
    s = dc.waitForEvent('stopped');
    await dc.stepOutRequest({ threadId });
    out.afterStepOut = (await top(dc, (await s).body.threadId)).name;
    await dc.continueRequest({ threadId });
    await dc.disconnectRequest({ terminateDebuggee: false });
  } else if (scenario === 'conditional') {
    const bps = await session(dc, [
      { line: bpLine, condition: "path == '/hit'" },
      { line: bpLine - 1, logMessage: 'logpoint {path}' }]);
    out.verified = bps.body.breakpoints.map(b => b.verified);
    const logs = [];
    dc.on('output', e => { if (e.body.output.includes('logpoint')) logs.push(e.body.output.trim()); });
    const stopped = dc.waitForEvent('stopped');
    console.log('READY');  // the test sends /miss then /hit
    const ev = await stopped;
    const frame = await top(dc, ev.body.threadId);
    const r = await dc.evaluateRequest({ expression: 'path', frameId: frame.id, context: 'repl' });
    out.stoppedFor = r.body.result;
    await dc.continueRequest({ threadId: ev.body.threadId });
    const deadline = Date.now() + 10000;
    while (logs.length < 2 && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
    out.logpoints = logs;
    await dc.disconnectRequest({ terminateDebuggee: false });
  } else if (scenario === 'setvar') {
    await session(dc, [{ line: bpLine }]);
    const stopped = dc.waitForEvent('stopped');
    console.log('READY');
    const ev = await stopped;
    const frame = await top(dc, ev.body.threadId);
    const scopes = await dc.scopesRequest({ frameId: frame.id });
    const r = await dc.setVariableRequest({
      variablesReference: scopes.body.scopes[0].variablesReference,
      name: 'greeting', value: "'changed by the editor'" });
    out.setTo = r.body.value;
    await dc.setBreakpointsRequest({ source: { path: app }, breakpoints: [] });
    await dc.continueRequest({ threadId: ev.body.threadId });
    await dc.disconnectRequest({ terminateDebuggee: false });
  } else if (scenario === 'pause') {
    await session(dc, []);
    const threads = (await dc.threadsRequest()).body.threads;
    const main = threads.find(t => t.name === 'MainThread') || threads[0];
    const stopped = dc.waitForEvent('stopped');
    await dc.pauseRequest({ threadId: main.id });
    const ev = await stopped;
    out.reason = ev.body.reason;
    out.frame = (await top(dc, ev.body.threadId)).name;
    await dc.continueRequest({ threadId: ev.body.threadId });
    await dc.disconnectRequest({ terminateDebuggee: false });
  } else if (scenario === 'jmc-true' || scenario === 'jmc-false') {
    // step into a line that calls the standard library: justMyCode decides where it lands
    await session(dc, [{ line: stepLine }], scenario === 'jmc-true');
    const stopped = dc.waitForEvent('stopped');
    console.log('READY');
    const ev = await stopped;
    const s = dc.waitForEvent('stopped');
    await dc.stepInRequest({ threadId: ev.body.threadId });
    const f = await top(dc, (await s).body.threadId);
    out.steppedInto = f.source ? f.source.path : null;
    out.steppedFunction = f.name;
    await dc.setBreakpointsRequest({ source: { path: app }, breakpoints: [] });
    await dc.continueRequest({ threadId: ev.body.threadId });
    await dc.disconnectRequest({ terminateDebuggee: false });
  } else if (scenario === 'exception') {
    // an exception raised in a request thread, in the app's own code (justMyCode): the
    // "raised" exception breakpoint stops there, exceptionInfo names it
    await session(dc, [{ line: bpLine }], true);
    const stopped = dc.waitForEvent('stopped');
    console.log('READY');
    const ev = await stopped;
    const frame = await top(dc, ev.body.threadId);
    await dc.evaluateRequest({ frameId: frame.id, context: 'repl', expression:
      "globals()['counter'] = type('Boom', (), {'__format__': lambda s, f: 1 / 0})()" });
    await dc.setBreakpointsRequest({ source: { path: app }, breakpoints: [] });
    await dc.setExceptionBreakpointsRequest({ filters: ['raised'] });
    const exc = dc.waitForEvent('stopped');
    await dc.continueRequest({ threadId: ev.body.threadId });
    const ev2 = await exc;
    out.reason = ev2.body.reason;
    out.exception = (await dc.send('exceptionInfo', { threadId: ev2.body.threadId })).body.exceptionId;
    const f2 = await top(dc, ev2.body.threadId);
    out.raisedIn = f2.name;
    await dc.evaluateRequest({ frameId: f2.id, context: 'repl',
      expression: "globals()['counter'] = 0" });
    await dc.setExceptionBreakpointsRequest({ filters: [] });
    await dc.continueRequest({ threadId: ev2.body.threadId });
    await dc.disconnectRequest({ terminateDebuggee: false });
  } else if (scenario === 'asyncio') {
    // a breakpoint reached from an asyncio task (uvicorn's request handler coroutine)
    await session(dc, [{ line: bpLine }]);
    const stopped = dc.waitForEvent('stopped');
    console.log('READY');
    const ev = await stopped;
    const st = await dc.stackTraceRequest({ threadId: ev.body.threadId, levels: 20 });
    out.frames = st.body.stackFrames.map(f => f.name);
    const caller = st.body.stackFrames.find(f => f.name === 'anything');
    out.rest = caller ? (await dc.evaluateRequest({ expression: 'rest', frameId: caller.id,
      context: 'repl' })).body.result : null;
    await dc.continueRequest({ threadId: ev.body.threadId });
    await dc.disconnectRequest({ terminateDebuggee: false });
  } else if (scenario.startsWith('die-')) {
    await session(dc, [{ line: bpLine }]);
    if (scenario === 'die-running') {
      console.log(JSON.stringify(out));
      process.exit(0);  // connected, breakpoints set, nothing stopped
    }
    const stopped = dc.waitForEvent('stopped');
    console.log('READY');
    const ev = await stopped;
    if (scenario === 'die-stepping') {
      dc.nextRequest({ threadId: ev.body.threadId });  // not awaited: gone mid-step
    }
    console.log(JSON.stringify(out));
    process.exit(0);  // no disconnect: the OS closes the socket
  } else if (scenario === 'cycle') {
    await session(dc, []);
    out.threads = (await dc.threadsRequest()).body.threads.length;
    await dc.disconnectRequest({ terminateDebuggee: false });
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

main().catch(e => { console.log(JSON.stringify({ scenario, error: String(e) })); process.exit(1); });
