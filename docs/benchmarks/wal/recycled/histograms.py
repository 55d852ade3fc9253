import re,sys
def load(path):
    h={}
    for l in open(path):
        if l.startswith('#'): continue
        m=re.match(r'(hotwire_\w+?)_(bucket|count|sum)(\{[^}]*\})? (\S+)',l)
        if not m: continue
        name,kind,labels,v=m.groups()
        if labels and 'api=' in labels and 'Produce' not in labels: continue
        d=h.setdefault(name,{'b':[]})
        if kind=='bucket':
            le=re.search(r'le="([^"]+)"',labels).group(1)
            d['b'].append((float('inf') if le=='+Inf' else float(le),float(v)))
        else: d[kind]=float(v)
    return h
a=load(sys.argv[1]); b=load(sys.argv[2])
for name in ['hotwire_flush_seconds','hotwire_wal_queued_seconds','hotwire_wal_sync_seconds','hotwire_request_seconds']:
    if name not in b: continue
    nb=b[name]; na=a.get(name,{'b':[],'count':0,'sum':0})
    da=dict(na['b'])
    rows=[(le,c-da.get(le,0)) for le,c in nb['b']]
    total=nb['count']-na.get('count',0)
    out=[]
    for q in [0.5,0.9,0.99,0.999]:
        for le,c in rows:
            if c>=q*total: out.append(f"p{q*100:g}<={le*1000:.3f}ms"); break
    print(name, int(total), f"mean {(nb['sum']-na.get('sum',0))/max(total,1)*1000:.3f}ms", ' '.join(out))
