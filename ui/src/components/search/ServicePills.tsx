// Per-service span counts as pills in each service's colour (the same colour every view uses).
import { serviceColor } from '../../model/colors';
import type { ServiceCount } from '../../model/search';

export default function ServicePills({ services }: { services: ServiceCount[] }) {
  return (
    <ul className="service-pills" aria-label="Spans per service">
      {services.map((s) => (
        <li key={s.name} className="service-pill" style={{ borderLeftColor: serviceColor(s.name) }}
          data-service={s.name} data-count={s.count} title={`${s.count} span${s.count === 1 ? '' : 's'} in ${s.name}`}>
          {s.name} <span className="count">{s.count}</span>
        </li>
      ))}
    </ul>
  );
}
