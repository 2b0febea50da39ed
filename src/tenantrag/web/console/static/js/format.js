// How numbers, sizes and times read in the console (the browser's locale, UTC dates).

const usd = new Intl.NumberFormat(undefined, {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 6,
});
const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });

export const formatUsd = (value) => usd.format(Number(value) || 0);
export const formatInt = (value) => integer.format(Number(value) || 0);
export const formatPercent = (ratio) => percent.format(Number(ratio) || 0);

export function formatBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(bytes) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** An ISO time or epoch seconds as "2026-12-07 14:03:22" (UTC), or the input when unparsable. */
export function formatTime(value) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(String(value));
  if (Number.isNaN(date.getTime())) return String(value ?? "");
  return date.toISOString().slice(0, 19).replace("T", " ");
}

/** Today's date in UTC as YYYY-MM-DD, the form the API's `from` and `to` take. */
export const todayUtc = () => new Date().toISOString().slice(0, 10);
