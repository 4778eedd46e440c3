// Placeholder: being written.
export default function SearchPage() {
  return <p className="empty">SearchPage</p>;
}
