// The hub's pages talk to the card agent on this PC (card-agent serve, 127.0.0.1).
// The PIN is never typed here: the agent opens its own window for it.
"use strict";
const cardAgent = (() => {
  const base = () => document.body.dataset.agent;
  const $ = (id) => document.getElementById(id);
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const esc = (t) => String(t).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  async function pair() {
    const reply = await fetch(base() + "/pair", { method: "POST" });
    if (!reply.ok) throw new Error("pair " + reply.status);
    const token = (await reply.json()).token;
    sessionStorage.setItem("cardAgentToken", token);
    return token;
  }

  async function call(method, path, body, again = true) {
    const token = sessionStorage.getItem("cardAgentToken") || (await pair());
    const init = { method, headers: { Authorization: "Bearer " + token } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const reply = await fetch(base() + path, init);
    if (reply.status === 401 && again) {
      sessionStorage.removeItem("cardAgentToken");
      return call(method, path, body, false);
    }
    return reply;
  }

  function violations(list) {
    return list.map((v) => `<div class="v"><b>[${esc(v.rule_id)}]</b> ${esc(v.message_ja)}` +
      `<br>${esc(v.message_en)}<br>→ ${esc(v.next_step_ja || "")}</div>`).join("");
  }

  function say(html) { $("status").innerHTML = html; }

  const unreachable = "<div class='v' id='no-agent'>ICカードエージェントに接続できません。" +
    "このPCでエージェント(card-agent serve)を起動してから、もう一度操作してください。</div>";

  // One card operation: the agent's window asks for the PIN; we wait for its outcome.
  async function operation(kind, params) {
    const win = window.open("about:blank", "_blank", "popup,width=720,height=900");
    let reply;
    try {
      reply = await call("POST", "/operations", { kind, params });
    } catch (e) {
      if (win) win.close();
      say(unreachable);
      return null;
    }
    const op = await reply.json();
    if (!reply.ok) {
      if (win) win.close();
      say(violations((op.detail && op.detail.violations) || []) || esc(op.detail));
      return null;
    }
    if (win) win.location = op.url;
    say("<p id='waiting'>ICカードエージェントの画面でPINを入力してください。</p>");
    for (;;) {
      await wait(400);
      const state = await (await call("GET", "/operations/" + op.id)).json();
      if (state.status !== "waiting") return state;
    }
  }

  async function outcome(requestId) {
    for (;;) {
      const found = await (await fetch("/gateway/requests/" + requestId)).json();
      if (found.status !== "pending") return found;
      await wait(500);
    }
  }

  async function apply(kind) {
    const params = JSON.parse($("params").textContent);
    const op = await operation(kind, params);
    if (op === null) return;
    if (op.status !== "done") {
      say(violations(op.violations) || "<p id='cancelled'>取り消しました。</p>");
      return;
    }
    say("<p>受け付けました。処理結果を待っています…</p>");
    const found = await outcome(op.result.request_id);
    if (found.status === "done") {
      const company = found.company_id ?
        `企業ID: <b id="company-id">${esc(found.company_id)}</b>。` : "";
      say(`<div class="ok" id="done">完了しました。${company}</div>`);
    } else {
      say(`<p id="outcome">${esc(found.status)}</p>` + violations(found.violations || []));
    }
  }

  async function hubSession() {
    const op = await operation("login", {});
    if (op === null) return null;
    if (op.status !== "done") { say(violations(op.violations)); return null; }
    sessionStorage.setItem("hubSession", op.result.token);
    return op.result.token;
  }

  async function listJobs() {
    const token = sessionStorage.getItem("hubSession") || (await hubSession());
    if (!token) return;
    const reply = await fetch("/gateway/jobs", { headers: { Authorization: "Bearer " + token } });
    if (reply.status === 401 || reply.status === 403) {
      sessionStorage.removeItem("hubSession");
      say(violations(((await reply.json()).detail || {}).violations || []));
      return;
    }
    const jobs = await reply.json();
    say(`<p id="logged-in">ログインしました(${jobs.length}件)。</p>`);
    $("jobs").innerHTML = "<tr><th>件名</th><th>金額(ハブの説明)</th><th>状態</th><th></th></tr>" +
      jobs.map((j) => `<tr><td>${esc(j.subject)}</td><td>${esc(j.amount_yen.toLocaleString())} 円</td>` +
        `<td class="job-status">${esc(j.status)}</td><td>${j.status === "pending" ?
        `<button class="sign" data-job="${esc(j.id)}">署名</button>` : ""}</td></tr>`).join("");
    for (const b of document.querySelectorAll("button.sign")) {
      b.onclick = () => sign(b.dataset.job);
    }
  }

  async function sign(jobId) {
    const op = await operation("sign", { job_id: jobId, hub_session: sessionStorage.getItem("hubSession") });
    if (op === null) return;
    if (op.status !== "done") { say(violations(op.violations)); return; }
    await listJobs();
    say("<div class='ok' id='signed'>署名した文書をハブが受け付けました。</div>");
  }

  async function showHolder(id) {
    const el = $(id);
    if (!el) return;
    try {
      const reply = await call("GET", "/certificate");
      const cert = await reply.json();
      el.textContent = reply.ok ? cert.subject : "ICカードを読み取れません。";
    } catch (e) {
      el.innerHTML = unreachable;
    }
  }

  return { apply, listJobs, showHolder, pair };
})();
