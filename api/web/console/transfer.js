// One transfer: its accounts (linked), amount as money, flags, the hold it posts or
// voids, the transfer it reverses, its metadata as text. #/transfer/ID

import { el, facts, timeEl } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { card, idLink, readable } from "./render.js";
import { t } from "/web/shared/i18n.js";

export async function renderTransfer(main, ctx, id) {
  const tr = await ctx.api.get(`/v1/transfers/${encodeURIComponent(id)}`);
  main.replaceChildren(
    el("h1", {}, t("Transfer {id}", { id: tr.id })),
    card("transfer", t("Transfer"), facts([
      [t("Amount"), moneyOrNote(tr.amount, tr.currency)],
      [t("Debit account"), idLink("account", tr.debit_account_id)],
      [t("Credit account"), idLink("account", tr.credit_account_id)],
      [t("Code"), String(tr.code)],
      [t("Flags"), tr.flags.join(", ") || "-"],
      [t("Hold"), idLink("transfer", tr.pending_id)],
      [t("Reverses"), idLink("transfer", tr.reverses_id)],
      [t("Timeout (s)"), String(tr.timeout_s)],
      [t("Applied"), timeEl(tr.created_at)],
      [t("Metadata"), readable("metadata", tr.metadata, tr.currency)],
    ])),
  );
}
